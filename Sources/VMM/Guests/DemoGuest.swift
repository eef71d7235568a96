/// A tiny built-in guest (`trivisor run --demo`; the default guest is the reference kernel): it
/// prints a banner on COM1, takes 20 PIT interrupts through the PIC at 100 Hz while idling in HLT,
/// and powers off with status 0. Small enough to run anywhere in a second, so parity and run-loop
/// tests use it. Source: guests/demo/demo.S.
public enum DemoGuest {
  /// Guest-physical address the demo image is copied to and started at.
  public static let loadAddress: UInt64 = 0x10000

  /// Copies the demo into `memory` and returns its ring-0 long-mode start state.
  public static func load(into memory: GuestMemory) throws(MemoryError) -> BootState {
    try memory.write(loadAddress, bytes: image)
    var boot = try SmallGuestBoot.prepare(memory: memory, entry: loadAddress)
    boot.summary = ["built-in demo guest (\(image.count) bytes) at 0x\(String(loadAddress, radix: 16)), ring 0"]
    return boot
  }
}
