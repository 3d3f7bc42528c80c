"""Built-in rewards, one module each; the registry imports every module here, so a new file is a new reward."""
