"""One module per ``autoops`` command group: parse options, call the core, render."""
