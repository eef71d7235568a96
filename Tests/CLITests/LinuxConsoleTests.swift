import Foundation
import Launcher
import TestHostSupport
import Testing
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Debian's kernel on the software engines, driven through its serial console as a user would:
/// a busybox root filesystem (`--rootfs`) whose init is a shell, then `uname`, a file system made,
/// written and read back on a virtio-blk disk and on an IDE disk (ata_piix, PIO), a TCP connection over virtio-net and the user
/// network to a listener on the host's 127.0.0.1, and `poweroff` (status 0). The virtio functions
/// interrupt by MSI-X on `interp`, and by their INTx pins (`pci=nomsi`: the DSDT's `_PRT` and the
/// interrupt links to I/O APIC pins 16-19) on `dbt`. Each engine boots Linux
/// in about a minute (interp) from a release build, so the test runs where
/// `TRIVISOR_LINUX_BINARY` names one (`.ci/run` does); it waits for each answer with a generous
/// watchdog and measures nothing.
@Suite(
  .requires(.linuxKernel, .busybox),
  .enabled(
    if: LinuxTestBinary.path != nil,
    "set TRIVISOR_LINUX_BINARY to a release build of trivisor (.ci/run does): Linux boots take minutes in a debug build"
  ))
struct LinuxConsoleTests {
  @Test(arguments: [("interp", ""), ("dbt", "pci=nomsi")])
  func busyboxShellRunsCommandsOnTheConsoleAndPowersOff(_ engine: String, _ kernelOptions: String) throws {
    let root = NSTemporaryDirectory() + "trivisor-linux-\(engine)-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let fm = FileManager.default
    try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: root + "/sbin", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: root + "/mnt", withIntermediateDirectories: true)
    try fm.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
    try fm.createSymbolicLink(atPath: root + "/bin/sh", withDestinationPath: "busybox")
    let initScript = "#!/bin/sh\n/bin/busybox --install -s /bin\nexec /bin/sh\n"
    fm.createFile(atPath: root + "/sbin/init", contents: Data(initScript.utf8), attributes: [.posixPermissions: 0o755])
    let disk = root + ".img"
    fm.createFile(atPath: disk, contents: Data(count: 8 << 20))
    defer { try? fm.removeItem(atPath: disk) }
    let ideDisk = root + "-ide.img"
    fm.createFile(atPath: ideDisk, contents: Data(count: 8 << 20))
    defer { try? fm.removeItem(atPath: ideDisk) }

    let (listener, port) = try HostSocket.listener()

    let console = try ConsoleProcess(
      LinuxTestBinary.path!,
      ["run", "--engine", engine, "--rootfs", root, "--virtio-blk", disk, "--disk", ideDisk, "--net", "user"]
        + (kernelOptions.isEmpty ? [] : ["--append", kernelOptions]))
    defer { console.stop() }
    try console.waitFor("/ # ")
    // The disks' nodes appear when their drivers have probed them (the ATA scan is asynchronous):
    // each step waits for its node rather than for time to pass.
    console.send("uname -r; echo UNAME$((6*7))\n")
    try console.waitFor("UNAME42")
    #expect(console.output.contains("-amd64"))
    console.send(
      "while [ ! -b /dev/vda ]; do sleep 1; done; mke2fs -q /dev/vda && mount -t ext2 /dev/vda /mnt && echo trivisor-file > /mnt/f && umount /mnt"
        + " && mount /dev/vda /mnt && cat /mnt/f && echo DISK$((1+1))\n")
    try console.waitFor("DISK2")
    #expect(console.output.contains("trivisor-file\r\nDISK2") || console.output.contains("trivisor-file\nDISK2"))
    console.send(
      "umount /mnt; while [ ! -b /dev/sda ]; do sleep 1; done; mke2fs -q /dev/sda && mount -t ext2 /dev/sda /mnt && echo trivisor-ide > /mnt/g"
        + " && umount /mnt && mount /dev/sda /mnt && cat /mnt/g && echo IDE$((2+2))\n")
    try console.waitFor("IDE4")
    #expect(console.output.contains("trivisor-ide\r\nIDE4") || console.output.contains("trivisor-ide\nIDE4"))
    // 10.0.2.2 is the host's loopback on the user network; busybox's nc sends its stdin.
    console.send(
      "ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && route add default gw 10.0.2.2"
        + " && echo trivisor-net | nc 10.0.2.2 \(port); echo NET$((1+2))=$?\n")
    var received: [UInt8] = []
    let deadline = Date().addingTimeInterval(console.watchdogSeconds)
    var connection: HostSocket?
    while !String(decoding: received, as: UTF8.self).contains("trivisor-net\n") {
      // nc ends (NET3=) only once the host closes, or when it fails to connect.
      guard Date() < deadline, !console.output.contains("NET3=") else { break }
      if connection == nil { connection = listener.acceptConnection() }
      received += connection?.receiveAvailable() ?? []
      usleep(20_000)
    }
    connection = nil  // closing it ends the guest's nc
    try console.waitFor("NET3=")
    #expect(String(decoding: received, as: UTF8.self) == "trivisor-net\n")
    try console.waitFor("NET3=0")
    console.send("umount /mnt; poweroff -f\n")
    #expect(try console.waitForExit() == 0)
    // The file systems reached the images: ext2's magic 0xEF53 at byte 1080.
    for path in [disk, ideDisk] {
      let image = try #require(fm.contents(atPath: path))
      #expect(image[1080] == 0x53 && image[1081] == 0xEF, "\(path)")
    }
  }
}

/// The release build of trivisor the Linux tests run (`TRIVISOR_LINUX_BINARY`), if usable.
enum LinuxTestBinary {
  static let path = ProcessInfo.processInfo.environment["TRIVISOR_LINUX_BINARY"].flatMap {
    FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
  }
}

/// A child process with its stdin and stdout on pipes, the output collected as it arrives.
final class ConsoleProcess: @unchecked Sendable {
  private let process = Process()
  private let input = Pipe()
  private let lock = NSCondition()
  private var collected = ""
  private var finished = false
  /// How long any one wait may take before the test fails (a hang, not a measurement).
  let watchdogSeconds: Double

  init(_ path: String, _ arguments: [String], watchdogSeconds: Double = 900) throws {
    self.watchdogSeconds = watchdogSeconds
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let handle = output.fileHandleForReading
    Thread { [self] in
      while true {
        let data = handle.availableData
        lock.lock()
        if data.isEmpty { finished = true } else { collected += String(decoding: data, as: UTF8.self) }
        lock.broadcast()
        lock.unlock()
        if data.isEmpty { return }
      }
    }.start()
  }

  /// Everything printed so far.
  var output: String { lock.withLock { collected } }

  /// Waits until the output contains `text`; throws when the process ends or the watchdog fires.
  func waitFor(_ text: String) throws {
    let deadline = Date().addingTimeInterval(watchdogSeconds)
    lock.lock()
    defer { lock.unlock() }
    while !collected.contains(text) {
      if finished || !lock.wait(until: deadline) {
        throw ConsoleError(
          "no '\(text)' in the console output; its end: \(String(collected.unicodeScalars.suffix(1500)))")
      }
    }
  }

  /// Types `text` on the console.
  func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

  /// The exit status, once the process has ended (watchdog as for `waitFor`).
  func waitForExit() throws -> Int32 {
    let deadline = Date().addingTimeInterval(watchdogSeconds)
    while process.isRunning {
      if Date() > deadline {
        throw ConsoleError("the VM did not stop; output end: \(String(output.unicodeScalars.suffix(1500)))")
      }
      usleep(50_000)
    }
    return process.terminationStatus
  }

  /// Ends the process if it still runs.
  func stop() {
    if process.isRunning { process.terminate() }
  }
}

struct ConsoleError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
