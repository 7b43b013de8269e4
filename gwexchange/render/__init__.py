"""Documents for people: the GB/T 9704 page layout, its fonts, and the signed PDF proof."""
