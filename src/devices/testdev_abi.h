/* The nestvm test device, enabled with --test-device: what the tier-1 test
 * guest uses to report to nestvm. It is not modelled on any real hardware.
 *
 *   port 0xf4, write:  end the VM; the byte written is nestvm's exit status
 *   MMIO 0xfe000000 (64-bit registers, any width access inside one):
 *     0x00 R   identity, TESTDEV_ID
 *     0x08 RW  scratch register
 *     0x10 W   guest-physical address of a buffer
 *     0x18 W   length of that buffer
 *     0x20 W   checksum the buffer (FNV-1a 64); R: the result
 *     0x28 R   1 if the last buffer was not inside guest RAM, else 0
 *     0x30 R   number of MMIO writes the device has seen
 */
#ifndef NESTVM_DEVICES_TESTDEV_ABI_H
#define NESTVM_DEVICES_TESTDEV_ABI_H

#define TESTDEV_EXIT_PORT 0xf4
#define TESTDEV_MMIO_BASE 0xfe000000ULL
#define TESTDEV_MMIO_SIZE 0x1000
#define TESTDEV_ID        0x4e56544455535400ULL /* "\0TSUDTVN": nestvm test device */

enum testdev_reg {
	TESTDEV_REG_ID = 0x00,
	TESTDEV_REG_SCRATCH = 0x08,
	TESTDEV_REG_BUF_ADDR = 0x10,
	TESTDEV_REG_BUF_LEN = 0x18,
	TESTDEV_REG_CHECKSUM = 0x20,
	TESTDEV_REG_BUF_FAULT = 0x28,
	TESTDEV_REG_WRITES = 0x30,
};

#endif
