import TestHostSupport
import Testing

/// The skip machinery itself: `TRIVISOR_TEST_PRETEND_MISSING` names requirements to treat as
/// missing, and a name it does not know is an error that says which names exist.
@Suite struct HostRequirementTests {
  @Test func namesListedAreTreatedAsMissing() throws {
    let parsed = try HostRequirement.parsePretendMissing(" kvm,qemu ,").get()
    #expect(parsed == [.kvm, .qemu])
    #expect(try HostRequirement.parsePretendMissing("").get().isEmpty)
  }

  @Test func anUnknownNameIsReportedWithTheKnownOnes() {
    guard case .failure(let error) = HostRequirement.parsePretendMissing("kvm,kvmm") else {
      Issue.record("kvmm accepted")
      return
    }
    #expect(error.names == ["kvmm"])
    #expect(error.description.contains("known: kvm, "))
  }
}

/// A test that only runs where kvm is usable: with `TRIVISOR_TEST_PRETEND_MISSING=kvm`, the
/// runner must list it as skipped (`.ci/run` checks that).
@Test(.requires(.kvm)) func skipPathProbeNeedsKVM() {
  #expect(HostRequirement.kvm.missingReason == nil)
}
