"""AC-SAR networks: skeleton layouts, the SCD-Net encoder, MoCo v2 and the text branch."""
