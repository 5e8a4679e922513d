"""Sub-commands of the ``spinelabeler`` command line, one module each."""
