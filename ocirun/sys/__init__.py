"""The system-call layer: thin ctypes wrappers, one module per family.

Nothing above this package calls ctypes directly. Each wrapper raises OSError
with the errno and a description of what was attempted, so messages read well
at the top. Logic that decides *what* to call lives elsewhere and takes the
wrappers as a parameter where it needs to be unit-tested without root.
"""
