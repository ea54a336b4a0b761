"""Host-side conversion: int8 TFLite quantisation, bundles, C export."""
