"""The recipes: one YAML per zoo entry (data only). Installed as the data package `zoo.recipes`."""
