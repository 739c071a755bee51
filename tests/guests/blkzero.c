/* blkzero DEVICE OFFSET LENGTH: zeroes a range of a block device with the
 * BLKZEROOUT ioctl, which the kernel sends as WRITE_ZEROES where the device
 * has it (util-linux's blkdiscard -z; busybox's blkdiscard lacks -z). Built
 * static into test guests' initramfs by tests/labhost/virtio.bats. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: blkzero DEVICE OFFSET LENGTH\n");
		return 2;
	}
	int fd = open(argv[1], O_WRONLY);
	uint64_t range[2] = { strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0) };
	if (fd < 0 || ioctl(fd, BLKZEROOUT, range) < 0) {
		perror(argv[1]);
		return 1;
	}
	return close(fd) == 0 ? 0 : 1;
}
