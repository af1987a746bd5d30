"""Link backends built into the core (entry point group ``locker.link``)."""
