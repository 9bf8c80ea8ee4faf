"""Data: MSD task descriptions and checks (``msd``), demo data in the real on-disk layouts (``demo_msd``)."""
