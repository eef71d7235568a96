/// The paravirtual ABI of one machine, after Xen's: discovery through CPUID leaves 0x40000000..
/// and the hypercall-page MSR, the hypercalls themselves (each area in its own file:
/// `ParavirtDomain+Console`, `+Scheduling`, `+EventChannels`, `+Memory`, `+Multicall`,
/// `+Monitor`), the shared info page with its event-channel bitmaps and per-vCPU `vcpu_info`, and
/// event delivery by upcall. Every machine serves it (a guest that never installs the hypercall
/// page never notices); docs/paravirtualization.md describes the ABI.
///
/// The engine only traps: its hypercall instruction (`EngineVM.hypercallInstruction`) ends in
/// `VMExit.hypercall`, the runner decodes the call once (`HypercallDispatcher.decode`) and runs
/// the handler registered here. Handlers validate everything the guest passes: pointers are
/// guest-virtual addresses translated through the caller's page tables with the caller's rights,
/// and every failure is one of Xen's error codes, never a VMM crash.
///
/// Threading: handlers and event delivery run on runner threads under the machine lock.
public final class ParavirtDomain {
  /// The guest's memory.
  public let memory: GuestMemory
  /// The bytes of the instruction each hypercall stub traps with (the engine's choice).
  public let trapInstruction: [UInt8]
  /// The guest-physical address of the hypercall page, once the guest installed one.
  public private(set) var hypercallPage: UInt64?
  /// Per-vCPU paravirtual state, by vCPU index.
  var vcpus: [ParavirtVCPU]
  /// The machine served (which owns this domain).
  unowned let machine: Machine
  /// Guest-physical bytes the VMM keeps for itself inside the guest's address space (the
  /// deprivileged mode's monitor); no guest mapping may reach them.
  var reservedRange: Range<UInt64>?
  /// Page types, pins, base-pointer references and TLB flush requests (`PageFrameTypes.swift`).
  var memoryState = ParavirtMemoryState()
  /// Remote TLB flushes their callers wait for (`TranslationFlushBarrier`).
  let flushBarrier: TranslationFlushBarrier
  /// The deprivileged mode's monitor (`--pv` boot); nil while the guest kernel runs at ring 0.
  var monitor: ParavirtMonitor?
  /// Event channels, timers and the shared info page's place (`EventChannelTable`).
  lazy var events = EventChannelTable(vcpuCount: vcpus.count)
  /// Host console input for a deprivileged guest, which `console_io(read)` takes
  /// (ParavirtDomain+Console).
  var consoleInput = ByteRing(capacity: 256)

  /// The ABI for `machine`, whose engine traps with `trapInstruction`.
  init(machine: Machine, trapInstruction: [UInt8]) {
    self.machine = machine
    memory = machine.memory
    self.trapInstruction = trapInstruction
    vcpus = (0..<machine.vcpus.count).map { ParavirtVCPU(index: $0) }
    flushBarrier = TranslationFlushBarrier(vcpuCount: machine.vcpus.count)
  }

  /// Registers every hypercall this ABI serves on `dispatcher`.
  func install(on dispatcher: HypercallDispatcher) {
    registerConsoleHypercalls(on: dispatcher)
    registerSchedulingHypercalls(on: dispatcher)
    registerEventChannelHypercalls(on: dispatcher)
    registerMemoryHypercalls(on: dispatcher)
    registerMulticall(on: dispatcher)
    registerMonitorHypercalls(on: dispatcher)
  }

  // MARK: The hypercall page

  /// Turns the RAM page at `address` (page-aligned, from the hypercall-page MSR) into the
  /// hypercall page: stub n at offset 32n loads n into EAX, traps and returns. False (the WRMSR
  /// then raises #GP) when the page is not guest RAM.
  func installHypercallPage(at address: UInt64) -> Bool {
    guard address & 0xFFF == 0, memory.region(containing: address, length: 4096)?.kind == .ram else { return false }
    var page = [UInt8](repeating: 0xCC, count: 4096)  // INT3 between stubs
    for number in 0..<Xen.hypercallPageStubs {
      let stub = Self.stub(number: UInt32(number), trap: trapInstruction)
      page.replaceSubrange(number * Xen.hypercallStubSize..<number * Xen.hypercallStubSize + stub.count, with: stub)
    }
    do {
      try memory.write(address, bytes: page)
    } catch {
      return false
    }
    hypercallPage = address
    return true
  }

  /// The stub for hypercall `number`: `mov $number, %eax; <trap>; ret`. `iret` never returns
  /// to its stub: it pushes RCX, R11 and RAX first, completing the guest's frame to Xen's
  /// `iret_context` (the handler pops it).
  static func stub(number: UInt32, trap: [UInt8]) -> [UInt8] {
    let load: [UInt8] = [0xB8] + withUnsafeBytes(of: number.littleEndian) { Array($0) }
    if number == UInt32(Xen.Hypercall.iret.rawValue) {
      return [0x51, 0x41, 0x53, 0x50] + load + trap + [0x0F, 0x0B]  // push rcx, r11, rax ... ud2
    }
    return load + trap + [0xC3]
  }

  // MARK: Hooks between the parts

  /// Deprivileged mode: makes root page table `frame` usable by the guest (the monitor's own
  /// top-level slots copied in, as Xen does when an L4 is pinned or loaded). Nothing otherwise.
  func prepareRootTable(frame: UInt64) throws(HypercallFailure) {
    guard let monitor else { return }
    let slot = (frame << 12) + UInt64(ParavirtMonitor.Layout.rootSlot * 8)
    do { try memory.write(monitor.layout.rootEntry, at: slot) } catch { throw HypercallFailure(.fault) }
  }

  /// Whether slot `index` of a root page table belongs to the monitor (guest updates refused).
  func isMonitorRootSlot(_ index: Int) -> Bool { monitor != nil && index == ParavirtMonitor.Layout.rootSlot }

  // MARK: Guest memory, as a hypercall sees it

  /// Whether page frame `frame` (a guest-physical address >> 12) is the guest's own RAM, which
  /// it may map: not ROM, not a device hole, not the VMM's reserved pages.
  func ownsFrame(_ frame: UInt64) -> Bool {
    guard frame < 1 << 40 else { return false }
    let address = frame << 12
    guard memory.region(containing: address, length: 4096)?.kind == .ram else { return false }
    if let reservedRange, reservedRange.overlaps(address..<address + 4096) { return false }
    return true
  }

  /// `count` bytes at guest-virtual `address` of `caller`, read through its page tables.
  /// -EFAULT when a page is not mapped or not guest RAM.
  func read(_ count: Int, at address: UInt64, for caller: HypercallCaller) throws(HypercallFailure) -> [UInt8] {
    guard count >= 0, count <= 1 << 20 else { throw HypercallFailure(.invalid) }
    let walk = try walker(for: caller)
    var out: [UInt8] = []
    out.reserveCapacity(count)
    var done = 0
    while done < count {
      let linear = address &+ UInt64(done)
      let chunk = min(count - done, 4096 - Int(linear & 0xFFF))
      let physical = try walk.physical(linear, write: false)
      guard let bytes = try? memory.read(physical, count: chunk) else { throw HypercallFailure(.fault) }
      out += bytes
      done += chunk
    }
    return out
  }

  /// Writes `bytes` at guest-virtual `address` of `caller`, through its page tables; every page
  /// must be mapped writable. -EFAULT otherwise (nothing is written then).
  func write(_ bytes: [UInt8], at address: UInt64, for caller: HypercallCaller) throws(HypercallFailure) {
    let walk = try walker(for: caller)
    var pieces: [(UInt64, Range<Int>)] = []
    var done = 0
    while done < bytes.count {
      let linear = address &+ UInt64(done)
      let chunk = min(bytes.count - done, 4096 - Int(linear & 0xFFF))
      pieces.append((try walk.physical(linear, write: true), done..<done + chunk))
      done += chunk
    }
    for (physical, range) in pieces {
      do {
        try memory.write(physical, bytes: Array(bytes[range]))
      } catch {
        throw HypercallFailure(.fault)
      }
    }
  }

  /// A little-endian integer at guest-virtual `address` of `caller`.
  func read<T: FixedWidthInteger>(_: T.Type, at address: UInt64, for caller: HypercallCaller) throws(HypercallFailure)
    -> T
  {
    let bytes = try read(MemoryLayout<T>.size, at: address, for: caller)
    var v: T = 0
    for (i, b) in bytes.enumerated() { v |= T(truncatingIfNeeded: b) << (8 * i) }
    return v
  }

  /// Stores a little-endian integer at guest-virtual `address` of `caller`.
  func write<T: FixedWidthInteger>(_ value: T, at address: UInt64, for caller: HypercallCaller)
    throws(HypercallFailure)
  {
    let bytes = (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    try write(bytes, at: address, for: caller)
  }

  private func walker(for caller: HypercallCaller) throws(HypercallFailure) -> GuestVirtualAccess {
    do {
      return GuestVirtualAccess(memory: memory, specialRegisters: try caller.vcpu.specialRegisters())
    } catch {
      throw HypercallFailure(.fault)
    }
  }
}

/// A hypercall that fails with one of Xen's error codes (the handler returns it as the result),
/// or that must run again once other vCPUs flushed their TLBs (`isPreemption`,
/// ParavirtDomain+Restart.swift).
struct HypercallFailure: Error, Equatable {
  let error: Xen.Error
  /// Not a failure: the call stopped before changing anything more and must be made again, with
  /// `continuation` as its arguments (nil: the ones it had), after the flushes it asked for.
  /// Where nothing restarts it, the guest sees -EAGAIN.
  private(set) var isPreemption = false
  /// The arguments the call runs again with (a batch's requests not done yet), when preempted.
  var continuation: [UInt64]?

  init(_ error: Xen.Error) { self.error = error }

  /// The call must wait for remote TLB flushes and run again (`ParavirtDomain.preemptForFlush`).
  static let preemption: HypercallFailure = {
    var failure = HypercallFailure(.tryAgain)
    failure.isPreemption = true
    return failure
  }()

  /// This preemption, to be continued with `arguments`.
  func continued(with arguments: [UInt64]) -> HypercallFailure {
    var failure = self
    failure.continuation = arguments
    return failure
  }

  /// The value for RAX.
  var returnValue: UInt64 { error.returnValue }
}

extension HypercallResult {
  /// The result of a handler body that returns a value or fails with a Xen error code.
  static func from(_ body: () throws(HypercallFailure) -> UInt64) -> HypercallResult {
    do {
      return .value(try body())
    } catch {
      return .value(error.returnValue)
    }
  }
}

/// The paravirtual state of one vCPU that several parts of the ABI share (the parts of Xen's
/// `struct vcpu` this ABI needs). Each part keeps what only it uses in its own state.
struct ParavirtVCPU {
  /// The vCPU's index.
  let index: Int
  /// `set_callbacks`/`callback_op`: where event upcalls enter the guest kernel (0: none).
  var eventCallback: UInt64 = 0
  /// Where the guest kernel is entered when the monitor cannot return to it (bad frame).
  var failsafeCallback: UInt64 = 0
  /// Where guest user code's SYSCALL enters the guest kernel (deprivileged mode).
  var syscallCallback: UInt64 = 0
  /// `stack_switch`: the guest kernel's stack for entries from guest user mode.
  var kernelStackSegment: UInt16 = 0
  /// See `kernelStackSegment`.
  var kernelStackPointer: UInt64 = 0
  /// Deprivileged mode: true while the guest runs its kernel, false in its user mode. A guest
  /// kernel at ring 0 (not deprivileged) is always in kernel mode.
  var inKernelMode = true
  /// `mmuext_op(new_baseptr)`: the guest kernel's root page table (guest-physical).
  var kernelBasePointer: UInt64 = 0
  /// `mmuext_op(new_user_baseptr)`: the root page table of guest user mode (deprivileged mode).
  var userBasePointer: UInt64 = 0
  /// Deprivileged mode: the vCPU has a context (vCPU 0 from the boot, the others from
  /// `vcpu_op(initialise)`).
  var initialised = false
  /// Deprivileged mode: the vCPU runs (`vcpu_op(up)`; vCPU 0 from the boot, until `down`).
  var isUp = false
  /// The context `vcpu_op(initialise)` gave, loaded by the next `up`.
  var startContext: BootState?
}
