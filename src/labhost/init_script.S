/* Embeds init.sh in the binary, NUL-terminated, as labhost_init_script. */
	.section .rodata
	.globl labhost_init_script
labhost_init_script:
	.incbin "src/labhost/init.sh"
	.byte 0
	.section .note.GNU-stack, "", @progbits
