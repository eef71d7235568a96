import Foundation
import Testing
import VMM

/// The VMM's exit statuses against the guest's (docs/exit-status.md).
@Suite struct ExitStatusTests {
  @Test func exitStatusesNeverCollideWithTheGuests() {
    let report = InternalErrorReport(reason: "x")
    let vmm: [StopReason] = [
      .internalError(report), .shutdown(.tripleFault, report), .haltedForever(report), .timeout(seconds: 1),
      .hostSignal(2), .reset, .outputClosed("serial"),
    ]
    let codes = vmm.map(\.exitStatus)
    #expect(codes == [4, 6, 8, 10, 12, 14, 16])
    #expect(codes.allSatisfy { $0 % 2 == 0 && $0 != 0 })
    #expect(StopReason.powerOff.exitStatus == 0)
    #expect(StopReason.outputMatched("x").exitStatus == 0)
    #expect(StopReason.debugExit(value: 0x10).exitStatus == 0x21)
    #expect(StopReason.debugExit(value: 0).exitStatus == 1)
  }
}
