"""Host-side conversion: filter design, int8 TFLite quantisation, bundles, C export."""
