import CKVM
import VMM

/// The kvm engine's hypercall trap. KVM answers VMCALL/VMMCALL itself (`kvm_emulate_hypercall`),
/// so the hypercall page's stubs trap with `out %eax, $0xE4` instead (E7 E4): a port-I/O exit
/// that reaches userspace at ring 0 and, where the TSS I/O bitmap or IOPL allows the port, at
/// ring 3. Ports 0xE4-0xE7 belong to no device of the VMM's PC (PCDevices.swift); the engine
/// reports an OUT of 4 bytes to 0xE4 as `VMExit.hypercall`, never as `.io`.
public enum KVMHypercallTrap {
  /// The reserved I/O port (a 4-byte OUT covers 0xE4-0xE7).
  public static let port: UInt16 = 0xE4
  /// `out %eax, $0xE4`.
  public static let instruction: [UInt8] = [0xE7, UInt8(port)]
  /// Trivisor's hypervisor leaves (as Sources/X86/System/CPUIDTable.swift gives them on interp and
  /// dbt): 0x40000000 "TrivisorVMM\0" with 0x40000002 the highest, 0x40000001 version 4.19,
  /// 0x40000002 one hypercall page through MSR 0x40000000.
  static let hypervisorLeaves: [(function: UInt32, eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32)] = {
    let bytes = Array("TrivisorVMM\0".utf8)
    func word(_ i: Int) -> UInt32 {
      (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i * 4 + $1]) << (8 * $1) }
    }
    return [
      (0x4000_0000, 0x4000_0002, word(0), word(1), word(2)),
      (0x4000_0001, 4 << 16 | 19, 0, 0, 0),
      (0x4000_0002, 1, Xen.hypercallPageMSR, 0, 0),
    ]
  }()
}

extension KVMVirtualMachine {
  /// `out %eax, $0xE4` (`KVMHypercallTrap`): VMCALL never reaches userspace under KVM.
  public var hypercallInstruction: [UInt8] { KVMHypercallTrap.instruction }
}

extension KVMVirtualCPU {
  /// Replaces KVM's own hypervisor range (0x40000000 "KVMKVMKVM" and its feature leaves) with
  /// Trivisor's, so every engine offers the same paravirtual ABI.
  static func presentHypervisorLeaves(in entries: inout [kvm_cpuid_entry2]) {
    entries.removeAll { $0.function >= 0x4000_0000 && $0.function < 0x5000_0000 }
    for leaf in KVMHypercallTrap.hypervisorLeaves {
      var e = kvm_cpuid_entry2()
      e.function = leaf.function
      e.eax = leaf.eax
      e.ebx = leaf.ebx
      e.ecx = leaf.ecx
      e.edx = leaf.edx
      entries.append(e)
    }
  }

  /// Makes the hypercall exit retired, as on the other engines: KVM's fast port-I/O path exits
  /// with RIP still at the OUT (it skips it on the next KVM_RUN unless RIP changed), its emulator
  /// with RIP past it. At the OUT, RIP is moved past it here, and KVM then skips nothing.
  func retireHypercallTrap() throws(EngineError) {
    var r = try registers()
    let sregs = try specialRegisters()
    let bytes = GuestPageWalker(memory: vm.memory, specialRegisters: sregs).bytesAtRIP(r, count: 2)
    if bytes == KVMHypercallTrap.instruction {
      r.rip &+= 2
      try setRegisters(r)
    }
  }
}
