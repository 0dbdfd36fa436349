"""Factor and unit data shipped as package data: units.txt, catalog.toml, editions/, gwp/."""
