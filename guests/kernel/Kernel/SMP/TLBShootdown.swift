/// TLB shootdown: a CPU that changed a mapping other CPUs may have cached asks them, by IPI
/// (`InterruptVector.tlbShootdown`), to invalidate it, and waits until each has acknowledged. One
/// request is in flight at a time (a lock); a CPU waiting for that lock or for acknowledgements
/// serves requests addressed to itself meanwhile, so two CPUs shooting at each other cannot
/// deadlock with interrupts off.
///
/// Two kinds: one page (`INVLPG` on every target), or "drop this address space" (targets that
/// still have the root loaded, lazily, since they last ran one of its tasks, switch to the kernel's
/// page tables: the root is about to be freed, or one of its pages unmapped).
enum TLBShootdown {
  /// Request `address` meaning "the whole address space".
  static let wholeAddressSpace: UInt64 = ~0
  private static var lock: TicketLock! = nil
  /// The request: page-table root (0 = any), address, and the CPUs (bit per index) yet to answer.
  private static var root: UInt64 = 0
  private static var address: UInt64 = 0
  private static var pending: AtomicWord! = nil
  private(set) static var requests = 0
  /// Polls before a target counts as not answering: generous (tens of seconds on the interpreter)
  /// because a vCPU thread may wait that long for a host core on a loaded host; still finite.
  static let maximumPolls = 500_000_000

  static func initialize() {
    lock = TicketLock()
    pending = AtomicWord()
  }

  /// Invalidates `page` on every other online CPU (whatever root it has loaded); true when all
  /// acknowledged.
  @discardableResult static func invalidatePage(_ page: UInt64) -> Bool {
    shoot(root: 0, address: page, targets: otherOnlineCPUs { _ in true })
  }

  /// Makes every other CPU that has `root` loaded drop it before the caller frees it or changes
  /// its mappings.
  @discardableResult static func releaseAddressSpace(_ root: UInt64) -> Bool {
    let targets = otherOnlineCPUs { shared(&$0.pointee.loadedRoot).load() == root }
    guard targets != 0 else { return true }
    return shoot(root: root, address: wholeAddressSpace, targets: targets)
  }

  private static func otherOnlineCPUs(_ include: (UnsafeMutablePointer<PerCPU>) -> Bool) -> UInt64 {
    guard SMP.enabled else { return 0 }
    var mask: UInt64 = 0
    let me = SMP.currentIndex
    for index in 0..<SMP.cpuSlots where index != me && SMP.isOnline(index) && include(PerCPU.cpu(index)) {
      mask |= 1 << UInt64(index)
    }
    return mask
  }

  private static func shoot(root: UInt64, address: UInt64, targets: UInt64) -> Bool {
    guard targets != 0 else { return true }
    while !lock.tryAcquire() {
      serve()
      Platform.spinWaitHint()
    }
    self.root = root
    self.address = address
    requests += 1
    pending.store(targets)
    for index in 0..<SMP.cpuSlots where targets & (1 << UInt64(index)) != 0 {
      IPI.send(InterruptVector.tlbShootdown, toCPU: index)
    }
    var polls = 0
    while pending.load() != 0 && polls < maximumPolls {
      Platform.spinWaitHint()
      polls += 1
    }
    let missing = pending.load()
    pending.store(0)
    lock.release()
    if missing != 0 {
      Console.lock()
      Console.write("SMP: TLB shootdown not acknowledged by CPU mask ")
      Console.write(hex: missing)
      Console.newline()
      Console.unlock()
    }
    return missing == 0
  }

  /// Carries out the request if it names this CPU (the IPI handler, and the waits above).
  static func serve() {
    guard let pending else { return }
    let cpu = PerCPU.current
    let bit: UInt64 = 1 << UInt64(cpu.pointee.index)
    guard pending.load() & bit != 0 else { return }
    if address == wholeAddressSpace {
      if Platform.currentAddressSpace() == root {
        Platform.switchAddressSpace(KernelLayout.kernelPML4)
        shared(&cpu.pointee.loadedRoot).store(KernelLayout.kernelPML4)
      }
    } else {
      Platform.invalidatePage(address)
    }
    cpu.pointee.shootdownsServed += 1
    pending.clearBits(bit)
  }
}
