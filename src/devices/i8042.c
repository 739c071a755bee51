#include "devices/i8042.h"
#include "mem/pc_layout.h"

#define I8042_DATA_PORT    PC_I8042_DATA_PORT
#define I8042_COMMAND_PORT PC_I8042_COMMAND_PORT
#define I8042_CMD_RESET    0xfe

static void data_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0; /* no keyboard: nothing to read */
}

static void command_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	struct i8042 *kbc = opaque;
	(void)offset;
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0; /* status: output empty, input empty */
		return;
	}
	if (data[0] == I8042_CMD_RESET)
		kbc->reset(kbc->ctx);
}

int i8042_attach(struct i8042 *kbc, struct bus *pio, void (*reset)(void *ctx), void *ctx)
{
	kbc->reset = reset;
	kbc->ctx = ctx;
	if (bus_register(pio, I8042_DATA_PORT, 1, data_access, kbc, "i8042") < 0)
		return -1;
	return bus_register(pio, I8042_COMMAND_PORT, 1, command_access, kbc, "i8042");
}
