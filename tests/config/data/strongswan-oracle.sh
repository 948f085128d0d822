#!/bin/sh
# strongswan-oracle.sh CONFDIR -- what does the real strongSwan make of a configuration?
#
# Not part of the test suite: a tool to check ikegate's reading of ipsec.conf and
# ipsec.secrets against the installed strongSwan (Debian 12: 5.9.8).  CONFDIR holds
# ipsec.conf, ipsec.secrets and optionally ipsec.d/ (bind-mounted over /etc/ipsec.d).
# Runs starter + charon as root in a private mount and network namespace (a tmpfs on
# /run, so the host's charon sockets are untouched), then prints the starter's output,
# charon's log (cfg level 2) and `stroke statusall`/`listall`.  Used to confirm the
# parser behaviour, error cases and default proposals the tests in tests/config cite.
# It leaves .ss.conf, .starter.log, .charon.log and .status.log in CONFDIR.
D=$(readlink -f "$1")
cat > $D/.ss.conf <<EOC
charon {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    stroke { secrets_file = $D/ipsec.secrets }
  }
  filelog { charonlog {
     path = $D/.charon.log
     default = 1
     cfg = 2 } }
}
EOC
rm -f $D/.charon.log
timeout 40 unshare -m -n --propagation private sh -c "
mount -t tmpfs tmpfs /run && ip link set lo up
[ -d $D/ipsec.d ] && mount --bind $D/ipsec.d /etc/ipsec.d
export STRONGSWAN_CONF=$D/.ss.conf
/usr/lib/ipsec/starter --nofork --conf $D/ipsec.conf > $D/.starter.log 2>&1 &
SP=\$!
for i in \$(seq 1 20); do [ -S /run/charon.ctl ] && break; kill -0 \$SP 2>/dev/null || break; sleep 0.3; done
sleep 1.5
/usr/lib/ipsec/stroke statusall > $D/.status.log 2>&1
/usr/lib/ipsec/stroke listall >> $D/.status.log 2>&1
kill \$SP 2>/dev/null; wait \$SP
"
echo "=== starter"; cat $D/.starter.log; echo "=== charon"; grep -v "loaded plugins\|opening directory\|^.*\[LIB\]" $D/.charon.log 2>/dev/null | head -${LINES_CHARON:-60}; echo "=== status"; head -${LINES_STATUS:-40} $D/.status.log
