// The assembly primitives of Arch/cpu.S. Only the native platform calls them.

@_extern(c, "cpu_outb") func cpu_outb(_ port: UInt16, _ value: UInt8)
@_extern(c, "cpu_outw") func cpu_outw(_ port: UInt16, _ value: UInt16)
@_extern(c, "cpu_inb") func cpu_inb(_ port: UInt16) -> UInt8
@_extern(c, "cpu_read_cr2") func cpu_read_cr2() -> UInt64
@_extern(c, "cpu_read_cr3") func cpu_read_cr3() -> UInt64
@_extern(c, "cpu_write_cr3") func cpu_write_cr3(_ value: UInt64)
@_extern(c, "cpu_write_cr8") func cpu_write_cr8(_ value: UInt64)
@_extern(c, "cpu_invlpg") func cpu_invlpg(_ address: UInt64)
@_extern(c, "cpu_rdtsc") func cpu_rdtsc() -> UInt64
@_extern(c, "cpu_rdmsr") func cpu_rdmsr(_ index: UInt32) -> UInt64
@_extern(c, "cpu_wrmsr") func cpu_wrmsr(_ index: UInt32, _ value: UInt64)
@_extern(c, "cpu_cli") func cpu_cli()
@_extern(c, "cpu_sti") func cpu_sti()
@_extern(c, "cpu_wait_for_interrupt") func cpu_wait_for_interrupt()
@_extern(c, "cpu_halt_forever") func cpu_halt_forever()
@_extern(c, "cpu_load_gdt") func cpu_load_gdt(_ gdtr: UInt64)
@_extern(c, "cpu_load_idt") func cpu_load_idt(_ idtr: UInt64)
@_extern(c, "cpu_load_tr") func cpu_load_tr(_ selector: UInt16)
@_extern(c, "cpu_percpu") func cpu_percpu() -> UInt64
@_extern(c, "cpu_pause") func cpu_pause()
@_extern(c, "mmio_read32") func mmio_read32(_ address: UInt64) -> UInt32
@_extern(c, "mmio_write32") func mmio_write32(_ address: UInt64, _ value: UInt32)
