"""vpbx: an open-source cloud PBX with a Rust media core and a Python control plane."""

__version__ = "0.1.0"
