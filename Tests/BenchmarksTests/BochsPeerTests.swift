import Benchmarks
import Foundation
import TestHostSupport
import Testing

/// Bochs as a peer: its configuration, and the loop image booting on it to the shutdown port.
@Suite struct BochsPeerTests {
  @Test func configurationBootsTheFloppyHeadlessAndUnpaced() {
    let peer = BochsPeer(executable: "/usr/bin/bochs", biosImage: "/rom/bios", vgaBiosImage: "/rom/vga")
    let lines = peer.configuration(floppy: "/tmp/x/loop.img").split(separator: "\n").map(String.init)
    #expect(lines.contains("romimage: file=/rom/bios"))
    #expect(lines.contains("vgaromimage: file=/rom/vga"))
    #expect(lines.contains("floppya: 1_44=/tmp/x/loop.img, status=inserted"))
    #expect(lines.contains("boot: floppy"))
    #expect(lines.contains("clock: sync=none, time0=local"))
    #expect(lines.contains("display_library: term"))
    #expect(lines.contains("panic: action=fatal"))
  }

  @Test func qemuBootsTheSameFloppyWithTheExitDevice() {
    let arguments = QEMUFloppyPeer.arguments(floppy: "/tmp/f.img")
    #expect(arguments.contains("file=/tmp/f.img,if=floppy,format=raw"))
    #expect(arguments.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"))
    #expect(arguments.contains("tcg"))
  }

  /// One iteration per mode: Bochs boots the floppy, the guest switches modes, loops and ends
  /// Bochs through port 0x8900 (a run that does not throws).
  @Test(.requires(.bochs), arguments: ModeLoop.Mode.allCases)
  func loopEndsBochsThroughTheShutdownPort(mode: ModeLoop.Mode) throws {
    let bochs = try BochsPeer.locate().get()
    _ = try bochs.run(floppyImage: ModeLoop.floppyImage(mode: mode, iterations: 1), timeoutSeconds: 60)
  }

  @Test(.requires(.qemu), arguments: ModeLoop.Mode.allCases)
  func loopEndsQEMUThroughIsaDebugExit(mode: ModeLoop.Mode) throws {
    let qemu = try QEMUFloppyPeer.locate().get()
    _ = try qemu.run(floppyImage: ModeLoop.floppyImage(mode: mode, iterations: 1), timeoutSeconds: 60)
  }
}
