"""Operations: one function per command, from the project and the live
facts to changes through the hooks and the runtime."""
