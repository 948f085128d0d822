"""The kernel data plane: ESP in the Linux kernel, driven over netlink XFRM.

* :mod:`.messages` -- sans-IO encoder/decoder of the netlink XFRM messages we use;
* :mod:`.netlink` -- the netlink socket (requests with ACK, dumps, errors with errno);
* :mod:`.routes` -- the routes to the clients' virtual IPs (own table and rule);
* :mod:`.kernel` -- :class:`~.kernel.KernelDataPlane` and the start-up probe
  :func:`~.kernel.kernel_esp_available`.
"""
