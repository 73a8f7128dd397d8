"""config.json: reading a bundle's configuration and checking it before anything is created.

`load.load_bundle` is the entry point; `validate.validate` is the check alone.
"""
