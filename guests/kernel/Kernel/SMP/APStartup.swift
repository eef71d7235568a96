@_extern(c, "memcpy") func kernel_memcpy(_ destination: UInt64, _ source: UInt64, _ count: Int) -> UInt64

/// Starts the application processors one at a time with INIT-SIPI-SIPI (Intel SDM vol. 3A,
/// 9.4.4): the trampoline (Arch/trampoline.S) is copied to 0x8000, its parameter block gets the
/// AP's page-table root, stack, per-CPU page and 64-bit entry, and the boot CPU polls (a bounded
/// number of times) for the AP to mark itself online from `ap_main`.
enum APStartup {
  static let trampolineAddress: UInt64 = 0x8000
  /// Polls of the AP's online flag before it is reported as not started: about 20 s on the
  /// interpreter, so that only an AP that really never starts is reported, not one whose vCPU
  /// thread waited for a host core.
  static let onlinePolls = 200_000_000

  /// Starts every AP in `apicIDs` but the boot CPU's; the per-CPU slots used and the CPUs online.
  static func startAll(_ apicIDs: [UInt32], bootAPIC: UInt32) -> (slots: Int, online: Int) {
    let size = KernelLayout.apTrampolineEnd - KernelLayout.apTrampolineStart
    _ = kernel_memcpy(trampolineAddress, KernelLayout.apTrampolineStart, Int(size))
    let parameters = UnsafeMutablePointer<UInt64>(
      bitPattern: UInt(trampolineAddress + KernelLayout.apTrampolineParameters - KernelLayout.apTrampolineStart))!
    var index = 1
    var online = 1
    for apicID in apicIDs where apicID != bootAPIC {
      guard index < KernelLayout.maximumCPUs else {
        Console.write("SMP: cpu apic=")
        Console.write(decimal: Int(apicID))
        Console.write(" not started: the kernel runs at most ")
        Console.write(decimal: KernelLayout.maximumCPUs)
        Console.write(" CPUs\n")
        continue
      }
      let cpu = PerCPU.prepare(index: index, apicID: apicID)
      parameters[0] = KernelLayout.kernelPML4
      parameters[1] = PerCPU.schedulerStackTop(index)
      parameters[2] = UInt64(UInt(bitPattern: cpu))
      parameters[3] = KernelLayout.apEntry
      atomic_store64(parameters + 4, 0)
      if start(apicID, started: parameters + 4, online: shared(&cpu.pointee.online)) {
        online += 1
      } else {
        Console.write("SMP: cpu ")
        Console.write(decimal: index)
        Console.write(" apic=")
        Console.write(decimal: Int(apicID))
        Console.write(" did not come up\n")
      }
      index += 1
    }
    return (index, online)
  }

  private static func start(_ apicID: UInt32, started: UnsafeMutablePointer<UInt64>, online: AtomicWord) -> Bool {
    IPI.sendINIT(toAPIC: apicID)
    delay(microseconds: 10_000)
    IPI.sendStartup(toAPIC: apicID, page: UInt32(trampolineAddress >> 12))
    delay(microseconds: 200)
    if atomic_load64(started) == 0 {
      IPI.sendStartup(toAPIC: apicID, page: UInt32(trampolineAddress >> 12))
    }
    var polls = 0
    while online.load() == 0 && polls < onlinePolls {
      Platform.spinWaitHint()
      polls += 1
    }
    return online.load() != 0
  }

  /// Spins on the TSC (calibrated by now).
  static func delay(microseconds: UInt64) {
    let cycles = Timer.timestampFrequency / 1_000_000 * microseconds
    let start = Platform.readTimestampCounter()
    while Platform.readTimestampCounter() &- start < cycles { Platform.spinWaitHint() }
  }
}

/// An application processor's first Swift code (from `ap_entry64`, Arch/trampoline.S), on its
/// scheduler stack with the kernel's page tables: GS, descriptor tables, SYSCALL MSRs, local APIC
/// and its timer; then it announces itself and serves the scheduler forever.
@_cdecl("ap_main")
func apMain(_ perCPUPage: UInt64) -> Never {
  Platform.writeModelSpecificRegister(0xC000_0101, perCPUPage)  // IA32_GS_BASE
  Platform.writeModelSpecificRegister(0xC000_0102, 0)  // IA32_KERNEL_GS_BASE: ring 3's GS base
  let cpu = PerCPU.current
  Platform.loadDescriptorTables(
    gdtr: KernelLayout.gdtr, idtr: InterruptDescriptorTable.pseudoDescriptor(),
    taskRegister: Selector.taskState(cpu: cpu.pointee.index))
  SystemCallMSRs.initialize()
  LocalAPIC.enable(bootProcessor: false)
  cpu.pointee.loadedRoot = KernelLayout.kernelPML4
  Console.lock()
  Console.write("SMP: cpu ")
  Console.write(decimal: cpu.pointee.index)
  Console.write(" apic=")
  Console.write(decimal: Int(LocalAPIC.id))
  Console.write(" online\n")
  Console.unlock()
  LocalAPICTimer.startPeriodic()
  shared(&cpu.pointee.online).store(1)
  Scheduler.serve()
}
