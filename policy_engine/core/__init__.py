"""The pure core: no I/O, no clocks of its own, no boto3 or YAML."""
