"""Terrific Totes data platform: the `totes` command and the runtime shared by the Lambdas."""
