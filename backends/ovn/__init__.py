"""OVN northbound (and southbound) door: connections, the names and external_ids keys, networks, routers, security groups, ports. Services reach OVN only through this package."""
