// The X86 module.
