#!/bin/sh
# make install / make uninstall: one list of files for both, so that
# uninstall removes exactly what install added.
#
#   deploy/install.sh install|uninstall|list
#
# From the environment (the Makefile passes them): DESTDIR, BUILD, PREFIX,
# BINDIR, SBINDIR, MANDIR, SYSCONFDIR, UNITDIR, SYSUSERSDIR, TMPFILESDIR,
# SBIN_PROGS, BIN_PROGS, MANS.
#
# The policy $SYSCONFDIR/xborder/xborder.conf is installed only when there
# is none, and uninstalled only when it is still the file we installed.
# Without DESTDIR, as root, install also creates the user and directories
# (systemd-sysusers, systemd-tmpfiles) and reloads systemd when it runs.
set -eu
: "${DESTDIR:=}" "${BUILD:=build}" "${PREFIX:=/usr/local}"
: "${BINDIR:=$PREFIX/bin}" "${SBINDIR:=$PREFIX/sbin}" "${MANDIR:=$PREFIX/share/man}"
: "${SYSCONFDIR:=/etc}" "${UNITDIR:=/lib/systemd/system}"
: "${SYSUSERSDIR:=/usr/lib/sysusers.d}" "${TMPFILESDIR:=/usr/lib/tmpfiles.d}"
: "${SBIN_PROGS:=xborderd xborder-wg}" "${BIN_PROGS:=xborderctl}" "${MANS:=}"
root=$(cd "$(dirname "$0")/.." && pwd)
ETC=$SYSCONFDIR/xborder

# Every file as "MODE SOURCE TARGET" (TARGET without DESTDIR). Sources
# ending in .in get @VAR@ replaced.
files() {
	for p in $SBIN_PROGS; do echo "0755 $BUILD/bin/$p $SBINDIR/$p"; done
	for p in $BIN_PROGS; do echo "0755 $BUILD/bin/$p $BINDIR/$p"; done
	for m in $MANS; do
		s=${m##*.}
		echo "0644 $m $MANDIR/man$s/$(basename "$m")"
	done
	echo "0644 deploy/systemd/xborderd.service.in $UNITDIR/xborderd.service"
	echo "0644 deploy/systemd/sysusers.conf $SYSUSERSDIR/xborder.conf"
	echo "0644 deploy/systemd/tmpfiles.conf.in $TMPFILESDIR/xborder.conf"
	(cd "$root/deploy/examples" && find . -type f | sort) | while read -r f; do
		f=${f#./}
		case $f in keys/*) mode=0600 ;; *) mode=0644 ;; esac
		echo "$mode deploy/examples/$f $ETC/examples/$f"
	done
}

subst() {
	sed -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@BINDIR@|$BINDIR|g" \
	    -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" "$1"
}

put() {	# put MODE SOURCE TARGET
	mkdir -p "$(dirname "$DESTDIR$3")"
	case $2 in
	*.in) subst "$root/$2" >"$DESTDIR$3.tmp" && chmod "$1" "$DESTDIR$3.tmp" &&
		mv -f "$DESTDIR$3.tmp" "$DESTDIR$3" ;;
	/*) install -m "$1" "$2" "$DESTDIR$3" ;;
	*) install -m "$1" "$root/$2" "$DESTDIR$3" ;;
	esac
	echo "  $DESTDIR$3"
}

do_install() {
	files | while read -r mode src dst; do put "$mode" "$src" "$dst"; done
	if [ -e "$DESTDIR$ETC/xborder.conf" ]; then
		echo "  $DESTDIR$ETC/xborder.conf exists: left as it is"
	else
		put 0644 deploy/xborder.conf "$ETC/xborder.conf"
	fi
	[ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] || return 0
	if command -v systemd-sysusers >/dev/null; then
		systemd-sysusers "$SYSUSERSDIR/xborder.conf"
		systemd-tmpfiles --create "$TMPFILESDIR/xborder.conf"
	fi
	[ -d /run/systemd/system ] && systemctl daemon-reload
	echo "next: a key in $ETC/keys, the policy $ETC/xborder.conf, then"
	echo "      systemctl enable --now xborderd   (docs/operations.md)"
}

do_uninstall() {
	files | while read -r mode src dst; do rm -f "$DESTDIR$dst"; done
	if [ -f "$DESTDIR$ETC/xborder.conf" ]; then
		if cmp -s "$root/deploy/xborder.conf" "$DESTDIR$ETC/xborder.conf"; then
			rm -f "$DESTDIR$ETC/xborder.conf"
		else
			echo "  $DESTDIR$ETC/xborder.conf was changed: left as it is"
		fi
	fi
	# Our own directories, when nothing else is left in them.
	find "$DESTDIR$ETC/examples" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	rmdir "$DESTDIR$ETC" 2>/dev/null || true
	[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && systemctl daemon-reload
	return 0
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
list) files | awk '{ print $3 }'; echo "$ETC/xborder.conf" ;;
*) echo "usage: deploy/install.sh install|uninstall|list" >&2; exit 2 ;;
esac
