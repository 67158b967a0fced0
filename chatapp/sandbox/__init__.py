"""The code interpreter: `run_python`, a built-in tool that runs Python in a bubblewrap
sandbox (bubblewrap.py). Off by default: an assistant gets it when staff tick it in the admin
or a definition lists it among its tools."""
