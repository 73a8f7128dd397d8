"""The runtime's operations (runtime.md "Operations"), one module each."""
