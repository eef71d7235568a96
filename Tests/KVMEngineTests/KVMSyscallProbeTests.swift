import TestHostSupport
import Testing
import VMM

@testable import KVMEngine

/// The host probe behind `EngineVM.syscallFromRing3EntersRing0` on kvm (`KVMSyscallProbe`).
@Suite struct KVMSyscallProbeTests {
  /// The probe gives one answer per host: a fresh probe VM agrees with the cached answer, and the
  /// VM property reports it.
  @Test(.requires(.kvm)) func probeAnswersTheSameEveryTime() throws {
    let engine = try KVMEngine()
    let cached = KVMSyscallProbe.syscallEntersRing0(system: engine.system)
    #expect(KVMSyscallProbe.runProbe(system: engine.system) == cached)
    let vm = try engine.createVM(memory: try GuestMemory(ramSize: 16 << 20), options: EngineOptions())
    #expect(vm.syscallFromRing3EntersRing0 == cached)
  }
}
