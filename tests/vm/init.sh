# The guest's /init (tests/vm/vm.sh puts XB_ROOT, XB_BUILD and TESTS above
# this). Runs as PID 1 in the initramfs: mounts, loads the modules the
# kernel tests need, runs each test with its output on the console, prints
# "xb-vm-exit N" (0: every test passed) and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
export XB_ROOT XB_BUILD
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /run/wireguard
mount -t devpts devpts /dev/pts
# /tmp stays the initramfs's own (writable already): the tree may live
# under /tmp, as a CI clone can, and a tmpfs there would hide it.
chmod 1777 /tmp
mount -t tmpfs shm /dev/shm
echo 1 >/proc/sys/kernel/panic_on_oops
ip link set lo up
rc=0
# The modules the kernel tests are here for: without one, every test would
# skip and the run would look green.
for m in tun veth wireguard ip_gre ip6_gre nf_tables nf_conntrack; do
	modprobe "$m" || { echo "not ok - vm/modprobe $m: the kernel cannot load it"; rc=1; }
done
echo "# vm: $(uname -r), $(nproc) CPUs, modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

for t in "${TESTS[@]}"; do
	echo "# vm: --- $t"
	case $t in
	*.sh) timeout -k 5 300 bash "$XB_ROOT/$t" </dev/null 2>&1 ;;
	*)    timeout -k 5 300 "$XB_BUILD/tests/$t" </dev/null 2>&1 ;;
	esac >/tmp/xb-vm-test.log
	r=$?
	cat /tmp/xb-vm-test.log
	name=${t##*/}; name=${name%.sh}
	# 77: skipped as a whole; say so, or it would vanish from the counts.
	if [ $r = 77 ] && ! grep -qE '^(ok|not ok|skip) - ' /tmp/xb-vm-test.log; then
		echo "skip - vm/$name: $(tail -n 1 /tmp/xb-vm-test.log)"
	elif [ $r != 0 ] && [ $r != 77 ]; then
		echo "# vm: $t exited $r"
		grep -q '^not ok - ' /tmp/xb-vm-test.log || echo "not ok - vm/$name: exited $r"
		rc=1
	fi
done
echo "xb-vm-exit $rc"
sync
echo o >/proc/sysrq-trigger
sleep 5
