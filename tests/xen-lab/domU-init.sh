#!/bin/busybox sh
# domU (PVH) init: mount the basics, give the guest a zram swap device for the swap steps, keep
# khugepaged quiet so huge-page changes happen only inside the workload's steps, run the workload.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "DOMU init reached, uptime $(cut -d' ' -f1 /proc/uptime)s kernel $(uname -r)"

# zram and zsmalloc are modules in Debian's kernel (lzo-rle is built in); modules.load has them in order.
for m in $(cat /modules.load 2>/dev/null); do insmod /lib/modules/$m.ko || echo "DOMU insmod $m failed"; done
if [ -e /sys/block/zram0/disksize ] && echo 64M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
    echo "DOMU zram swap on: $(tail -n +2 /proc/swaps | tr -s ' ')"
else
    echo "DOMU zram swap NOT available (modules: $(cat /modules.load 2>/dev/null))"
fi
T=/sys/kernel/mm/transparent_hugepage
# Only the workload's MADV_HUGEPAGE region gets huge pages, and khugepaged sleeps for an hour:
# an asynchronous collapse between two steps would be a change no step explains.
echo madvise > $T/enabled 2>/dev/null
echo 3600000 > $T/khugepaged/scan_sleep_millisecs 2>/dev/null
echo 3600000 > $T/khugepaged/alloc_sleep_millisecs 2>/dev/null
echo "DOMU thp enabled=$(cat $T/enabled 2>/dev/null) defrag=$(cat $T/defrag 2>/dev/null)"
/workload
echo "DOMU workload exited rc=$?"
while true; do sleep 3600; done
