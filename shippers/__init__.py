"""AssetShippers: incremental, resumable exports to other catalogs."""
