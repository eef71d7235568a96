/// Segment selectors of the boot GDT (Arch/boot.S).
enum Selector {
  static let kernelCode: UInt16 = 0x08
  static let kernelData: UInt16 = 0x10
  static let userData: UInt16 = 0x1B
  static let userCode: UInt16 = 0x23
  /// CPU 0's TSS; CPU i's is 16 x i above.
  static let taskState: UInt16 = 0x28

  static func taskState(cpu index: Int) -> UInt16 { taskState + UInt16(16 * index) }
}

/// The 64-bit task-state segments, one per CPU in its per-CPU page: the ring-0 stack for entries
/// from ring 3, and IST1 for double faults. No I/O bitmap, so ring 3 cannot touch ports.
enum TaskStateSegment {
  static let size: UInt64 = 104

  /// Fills in CPU `cpu`'s TSS and its GDT descriptor (selector `Selector.taskState(cpu:)`).
  static func initialize(cpu: UnsafeMutablePointer<PerCPU>, doubleFaultStackTop: UInt64) {
    let tss = PerCPU.taskStateSegment(cpu)
    tss.storeBytes(of: doubleFaultStackTop, toByteOffset: 36, as: UInt64.self)  // IST1
    tss.storeBytes(of: UInt16(size), toByteOffset: 102, as: UInt16.self)  // I/O map base: none
    let base = UInt64(UInt(bitPattern: tss))
    var low = (size - 1) & 0xFFFF
    low |= (base & 0xFF_FFFF) << 16
    low |= UInt64(0x89) << 40  // present, 64-bit available TSS
    low |= ((base >> 24) & 0xFF) << 56
    let slot = 5 + 2 * cpu.pointee.index
    KernelLayout.gdt[slot] = low
    KernelLayout.gdt[slot + 1] = base >> 32
  }

  static func setRing0Stack(_ top: UInt64, cpu: UnsafeMutablePointer<PerCPU>) {
    PerCPU.taskStateSegment(cpu).storeBytes(of: top, toByteOffset: 4, as: UInt64.self)
  }
}

/// The IDT: the 32 exception vectors, the 16 PIC lines at 0x20...0x2F, the local APIC's vectors
/// (timer 0xEF, IPIs 0xF0...0xF2: Kernel/SMP/InterruptVectors.swift) and the spurious vector 0xFF,
/// all interrupt gates (interrupts stay off in the kernel). Every CPU loads the same IDT.
enum InterruptDescriptorTable {
  static let doubleFault = 8

  static func initialize() {
    for vector in 0..<48 {
      setGate(vector, handler: KernelLayout.trapStubs[vector], stack: vector == doubleFault ? 1 : 0)
    }
    setGate(0xFF, handler: KernelLayout.trapStubs[48], stack: 0)
    // Arch/traps.S trap_stub_table: 239...242 follow 255.
    setGate(InterruptVector.localTimer, handler: KernelLayout.trapStubs[49], stack: 0)
    setGate(InterruptVector.reschedule, handler: KernelLayout.trapStubs[50], stack: 0)
    setGate(InterruptVector.tlbShootdown, handler: KernelLayout.trapStubs[51], stack: 0)
    setGate(InterruptVector.crossCall, handler: KernelLayout.trapStubs[52], stack: 0)
  }

  private static func setGate(_ vector: Int, handler: UInt64, stack: UInt64) {
    var low = handler & 0xFFFF
    low |= UInt64(Selector.kernelCode) << 16
    low |= stack << 32
    low |= UInt64(0x8E) << 40  // present, DPL 0, 64-bit interrupt gate
    low |= ((handler >> 16) & 0xFFFF) << 48
    KernelLayout.idt[vector * 2] = low
    KernelLayout.idt[vector * 2 + 1] = handler >> 32
  }

  /// The IDTR pseudo-descriptor, stored after the 256 gates.
  static func pseudoDescriptor() -> UInt64 {
    let descriptor = UnsafeMutableRawPointer(KernelLayout.idt + 512)
    descriptor.storeBytes(of: UInt16(256 * 16 - 1), as: UInt16.self)
    descriptor.storeBytes(of: UInt64(UInt(bitPattern: KernelLayout.idt)), toByteOffset: 2, as: UInt64.self)
    return UInt64(UInt(bitPattern: descriptor))
  }
}

/// SYSCALL/SYSRET: EFER.SCE, the selector bases in STAR, the entry point and the masked flags.
enum SystemCallMSRs {
  static func initialize() {
    let efer: UInt32 = 0xC000_0080
    Platform.writeModelSpecificRegister(efer, Platform.readModelSpecificRegister(efer) | 1)
    // SYSCALL: CS = 0x08, SS = 0x10. SYSRET: CS = 0x10 + 16 | 3, SS = 0x10 + 8 | 3.
    Platform.writeModelSpecificRegister(0xC000_0081, (UInt64(0x10) << 48) | (UInt64(Selector.kernelCode) << 32))
    Platform.writeModelSpecificRegister(0xC000_0082, KernelLayout.syscallEntry)
    Platform.writeModelSpecificRegister(0xC000_0084, 0x4_0700)  // clear TF, IF, DF, AC
  }
}
