// The Interpreter module.
