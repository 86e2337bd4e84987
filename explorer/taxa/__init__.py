"""Taxa: lineages from the iNaturalist taxonomy, older names matched to accepted ones (synonymy), iNat 2021 class
names and common names. Everything that compares two names goes through here, never string equality."""
