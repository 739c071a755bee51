# /init body for bench/lab (scripts/mkinitramfs.sh adds the prologue): says
# it is up, then idles, as a lab node between classes.
echo "LAB-NODE-READY"
while :; do sleep 3600; done
