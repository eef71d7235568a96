/// Why a vCPU stopped running guest code and handed control to the VMM.
///
/// This is the one exit model every engine speaks: `kvm` translates `kvm_run` exits into it, the
/// software engines produce it directly. The VMM handles an exit and, where the guest waits for an
/// answer (an `IN`, an MMIO read, `RDMSR`, `CPUID`), hands the answer back with
/// `VirtualCPU.complete(_:)` before the next `run()`, the way KVM completes an instruction on the
/// next `KVM_RUN`.
public enum VMExit: Sendable, Equatable {
  /// Port I/O. For `OUT`, `value` holds the data; for `IN`, the VMM answers with `.value`.
  case io(PortAccess)
  /// An access to guest-physical memory that is not RAM.
  case mmio(MMIOAccess)
  /// `HLT` with interrupts able to wake the vCPU (only when `ExitControls.hltExiting`).
  case halt
  /// FERR#: with CR0.NE clear, a waiting x87 instruction found an unmasked exception pending and
  /// froze before running (the software engines; hardware reports through `#MF` or the
  /// platform itself). The VMM answers `.value(1)` when IGNNE# is asserted (the instruction then
  /// runs) or raises the error interrupt and answers `.value(0)`: the vCPU then waits for an
  /// interrupt as after `HLT`, and the handler returns to the instruction.
  case floatingPointError
  /// The vCPU cannot continue: triple fault, or `HLT` with interrupts disabled.
  case shutdown(ShutdownReason)
  /// A hypercall (`VMCALL`/`VMMCALL`, or the paravirtual hypercall page), retired: the VMM reads
  /// the number and arguments from the registers (`HypercallDispatcher`) and answers with
  /// `.value` (the result in RAX).
  case hypercall
  /// `CPUID` exiting: the VMM answers with `.cpuid`.
  case cpuid(leaf: UInt32, subleaf: UInt32)
  /// `RDMSR` of an MSR the MSR bitmap traps: the VMM answers with `.value` or `.fault`.
  case msrRead(index: UInt32)
  /// `WRMSR` of a trapped MSR: the VMM answers with `.none` or `.fault`.
  case msrWrite(index: UInt32, value: UInt64)
  /// `RDTSC`/`RDTSCP` exiting: the VMM answers with `.value`.
  case rdtsc
  /// `INVLPG` exiting.
  case invlpg(address: UInt64)
  /// A guest exception selected by the exception bitmap.
  case exception(vector: UInt8, errorCode: UInt32?)
  /// The guest can take an external interrupt now (after `requestInterruptWindow(true)`).
  case interruptWindow
  /// `kick()` was called (a timer fell due, input arrived, or the VMM is stopping).
  case kicked
  /// The instruction budget given to `run(budget:)` ran out (the scheduler's time slice).
  case budgetExhausted
  /// The engine could not enter or continue the guest; the report says why, with registers.
  indirect case internalError(InternalErrorReport)

  /// Short stable name, used as the statistics key and in JSON (see `ExitKind`).
  public var reasonName: String { ExitKind(self).name }
}

/// An IN or OUT: the port, its width and, for OUT, the value.
public struct PortAccess: Sendable, Equatable {
  /// The I/O port.
  public var port: UInt16
  /// 1, 2 or 4 bytes.
  public var size: Int
  /// OUT (true) or IN (false).
  public var isWrite: Bool
  /// Data written by `OUT` (low `size` bytes).
  public var value: UInt32
  /// An access of `size` bytes (1, 2 or 4) to `port`; `value` is what OUT writes.
  public init(port: UInt16, size: Int, isWrite: Bool, value: UInt32 = 0) {
    self.port = port
    self.size = size
    self.isWrite = isWrite
    self.value = value
  }
}

/// A guest access to an address no RAM backs: the address, width and, for writes, the value.
public struct MMIOAccess: Sendable, Equatable {
  /// The guest-physical address.
  public var address: UInt64
  /// 1, 2, 4 or 8 bytes.
  public var size: Int
  /// OUT (true) or IN (false).
  public var isWrite: Bool
  /// The value a write stores (reads: 0).
  public var value: UInt64
  /// An access of `size` bytes (1-8) at `address`; `value` is what a write stores.
  public init(address: UInt64, size: Int, isWrite: Bool, value: UInt64 = 0) {
    self.address = address
    self.size = size
    self.isWrite = isWrite
    self.value = value
  }
}

/// Why an engine ended the guest.
public enum ShutdownReason: Sendable, Equatable {
  case tripleFault
  /// `HLT` with `IF=0` and no NMI source: nothing can ever wake the vCPU.
  case haltWithInterruptsDisabled
  /// The engine reports a shutdown without a more precise reason (KVM_EXIT_SHUTDOWN).
  case unspecified
}

/// What an engine knows when it cannot go on: printed for the user, never just a code.
public struct InternalErrorReport: Sendable, Equatable, CustomStringConvertible {
  /// What happened, in one line.
  public var reason: String
  /// The vCPU's registers at that point, when they could be read.
  public var registers: Registers?
  /// The vCPU's system registers at that point, when they could be read.
  public var specialRegisters: SpecialRegisters?
  /// Up to 16 bytes at the guest's RIP, if readable.
  public var bytesAtRIP: [UInt8]
  /// A report of `reason` with the state that could be read.
  public init(
    reason: String, registers: Registers? = nil, specialRegisters: SpecialRegisters? = nil,
    bytesAtRIP: [UInt8] = []
  ) {
    self.reason = reason
    self.registers = registers
    self.specialRegisters = specialRegisters
    self.bytesAtRIP = bytesAtRIP
  }
  /// The reason, the registers and the bytes at RIP, as printed for the user.
  public var description: String {
    var s = reason
    if let r = registers { s += "\n" + r.description }
    if let sr = specialRegisters { s += "\n" + sr.description }
    if !bytesAtRIP.isEmpty {
      s += "\nbytes at rip: " + bytesAtRIP.map { hex2($0) }.joined(separator: " ")
    }
    return s
  }
}

/// The VMM's answer to an exit that the guest waits on.
public enum ExitResponse: Sendable, Equatable {
  /// Nothing to hand back (OUT, MMIO write, HLT ...).
  case none
  /// Data for IN, an MMIO read, RDMSR or RDTSC.
  case value(UInt64)
  /// The four CPUID output registers.
  case cpuid(eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32)
  /// Make the exiting instruction fault instead (for example #GP for an unknown MSR).
  case fault(vector: UInt8, errorCode: UInt32?)
}

@inline(__always) func hex2(_ b: UInt8) -> String {
  let s = String(b, radix: 16)
  return s.count == 1 ? "0" + s : s
}
