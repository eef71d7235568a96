@_extern(c, "kernel_symbol") func kernel_symbol(_ index: Int) -> UInt64

/// Addresses fixed by the linker script and the assembly files (Arch/cpu.S `kernel_symbol_table`).
enum KernelLayout {
  static var imageStart: UInt64 { kernel_symbol(0) }
  static var imageEnd: UInt64 { kernel_symbol(1) }
  static var userTextStart: UInt64 { kernel_symbol(2) }
  static var userTextEnd: UInt64 { kernel_symbol(3) }
  /// The kernel's own root table: the builder's (`start_info.pt_base`) in the paravirtual mode.
  static var kernelPML4: UInt64 { Paravirt.active ? Paravirt.kernelRoot : kernel_symbol(4) }
  static var firstPageTable: UnsafeMutablePointer<UInt64> { pointer(5) }
  static var gdt: UnsafeMutablePointer<UInt64> { pointer(6) }
  static var gdtr: UInt64 { kernel_symbol(7) }
  static var trapStubs: UnsafeMutablePointer<UInt64> { pointer(8) }
  static var syscallEntry: UInt64 { kernel_symbol(9) }
  static var trapReturn: UInt64 { Paravirt.active ? Paravirt.trapReturn : kernel_symbol(10) }
  static var userStart: UInt64 { kernel_symbol(11) }
  /// `maximumCPUs` per-CPU pages (Kernel/SMP/PerCPU.swift).
  static var perCPUPages: UInt64 { kernel_symbol(12) }
  /// `maximumCPUs` scheduler stacks of `cpuStackSize` (the boot CPU keeps its boot stack).
  static var cpuStacks: UInt64 { kernel_symbol(13) }
  static var idt: UnsafeMutablePointer<UInt64> { pointer(14) }
  static var doubleFaultStackTop: UInt64 { kernel_symbol(15) }
  static var taskStacks: UInt64 { kernel_symbol(16) }
  static var heapStart: UInt64 { kernel_symbol(17) }
  static var heapEnd: UInt64 { kernel_symbol(18) }
  static var clockPage: UInt64 { kernel_symbol(19) }
  /// `maximumCPUs` double-fault stacks of `cpuFaultStackSize` (the boot CPU uses the one above).
  static var cpuFaultStacks: UInt64 { kernel_symbol(20) }
  static var apTrampolineStart: UInt64 { kernel_symbol(21) }
  static var apTrampolineEnd: UInt64 { kernel_symbol(22) }
  static var apTrampolineParameters: UInt64 { kernel_symbol(23) }
  static var apEntry: UInt64 { kernel_symbol(24) }

  static let taskStackSize: UInt64 = 16384
  static let maximumTasks = 16
  /// CPUs the kernel starts (MAX_CPUS in Arch/boot.S and the areas of Arch/cpu.S).
  static let maximumCPUs = 8
  static let cpuStackSize: UInt64 = 16384
  static let cpuFaultStackSize: UInt64 = 4096
  /// Physical pages handed out to page tables and user memory: [2 MiB, 8 MiB). The guest needs at
  /// least 8 MiB of RAM. In the paravirtual mode: from the end of the domain builder's bootstrap
  /// area to the end of its mapping (Kernel/Paravirt/Paravirt.swift).
  static var framePoolStart: UInt64 { Paravirt.active ? Paravirt.framePoolStart : 0x20_0000 }
  static var framePoolEnd: UInt64 { Paravirt.active ? Paravirt.framePoolEnd : 0x80_0000 }

  private static func pointer(_ index: Int) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer(bitPattern: UInt(kernel_symbol(index)))!
  }
}
