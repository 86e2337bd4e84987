"""Photos: safe loading (size caps, odd modes), EXIF places and dates, manifests of labelled photos, thumbnails."""
