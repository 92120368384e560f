"""The embedded lab: an OVN central host and N libvirt hypervisors, each in network, mount and
UTS namespaces of its own on this machine (``virtdeck lab up/down/status``). Never imports
textual. Facts behind it: /work/shared/LAB-NOTES.md.

Modules and the API other code uses:

- :mod:`topology` — names and addresses (docstring has the full map): ``CENTRAL_ADDRESS``
  192.168.100.10, ``hypervisor(i).address`` 192.168.100.1i, ``NB_TCP``/``SB_TCP``,
  ``NB_SOCKET``, ``OUTSIDE_ADDRESS`` 172.16.0.254, ``VLAN_HOSTS`` {100: ("vd-ext100",
  "10.100.0.1"), 200: ("vd-ext200", "10.200.0.1")}, ``POOL_NAME`` "virtdeck".
- :mod:`light` — light hypervisors lh1..lh16 (``topology.light(i)``, 192.168.100.(200+i)):
  sshd + libvirtd + pool only, ``up(n, light=L)``; ``daemon_rss(host)`` (MiB per daemon).
- :mod:`up` — ``up(n=2, log=print, light=None) -> LabStatus``; :mod:`down` — ``down(log=print) -> list[str]``
  (leftovers, [] when clean); :mod:`status` — ``check(n=None) -> LabStatus`` (``.ready``,
  ``.checks``, ``.chassis``, ``.lines()``), ``ssh_argv(address, argv)``, ``sb_chassis()``.
- :mod:`hosts` — ``run_in(host, argv)``, ``popen_in``, ``holder_pid``, ``host_path(host, path)``,
  ``libvirt_uri(host)`` (local socket route, no SSH), ``run_in_netns(netns, argv)``.
- :mod:`central` — OVN central per flavour (``--ovn standalone|cluster-ssl``): ``ensure``,
  ``flavour()``, ``ctl_argv("nb"|"sb")`` (ovn-nbctl/sbctl argv reaching it, SSL included),
  ``leaders()`` (which raft member leads NB/SB, active northd), ``member_pid(kind, i)``;
  :mod:`pki` — the lab PKI made with ovs-pki (``ensure(names)``, ``pair(name)``, ``ca_bundle()``).
- :mod:`image` — ``ensure_template() -> Template`` (cached Debian 12 + cloud-init build).
- :mod:`smoke` — ``boot_probe(host) -> ProbeResult`` (boot a seeded guest, watch cloud-init).
- :mod:`state` — paths (``lab_dir()``, ``image_cache_dir()``), ``LabError``.
- :mod:`sandbox` — ``run_sandboxed(argv, …) -> CompletedProcess`` (``.stray``, ``.signal``): a
  command in private namespaces with a lab of its own, all of which ends with it, also on
  SIGTERM/SIGINT/SIGHUP.
- :mod:`owners` — owner records (PID + start time) of labs and sandboxes, ``labs() ->
  list[LabInfo]`` (``lab status --all``), ``reap_orphans(log)`` (sandboxes whose owner is
  gone), ``interrupt_on_signals()`` (the owners' signal handling).

Errors: every expected failure is a :class:`state.LabError` (a ``VirtdeckError``) with one line
saying what to do.
"""
