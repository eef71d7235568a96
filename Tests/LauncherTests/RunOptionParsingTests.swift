import Foundation
import Launcher
import Testing
import VMM

/// `--memory` sizes and `--serial`/`--debugcon` backends as the command line parses them.
@Suite struct RunOptionParsingTests {
  @Test func memorySizesParseWithBinarySuffixes() throws {
    #expect(try MemorySize(parsing: "256M").bytes == 256 << 20)
    #expect(try MemorySize(parsing: "1G").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "1gib").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "65536K").bytes == 64 << 20)
    #expect(try MemorySize(parsing: "16777216").bytes == 16 << 20)
    #expect(try MemorySize(parsing: "1T").bytes == 1 << 40)
  }

  @Test func garbageAndAbsurdSizesAreRefused() {
    for bad in [
      "", "M", "12Q", "-1M", "1.5G", "2T", "99999999999999999999", "18446744073709551615K", "0", "4K",
      "1048577", "１M",
    ] {
      #expect(throws: MemorySize.Invalid.self, "\(bad)") { try MemorySize(parsing: bad) }
    }
  }

  @Test func diskArgumentsParseTheReadOnlySuffixOnly() {
    #expect(DiskArgument(argument: "disk.img") == DiskArgument(path: "disk.img", readOnly: false))
    #expect(DiskArgument(argument: "disk.img,readonly") == DiskArgument(path: "disk.img", readOnly: true))
    #expect(DiskArgument(argument: "/a,b/disk.img,ro") == DiskArgument(path: "/a,b/disk.img", readOnly: true))
    #expect(DiskArgument(argument: "/a,b/disk.img") == DiskArgument(path: "/a,b/disk.img", readOnly: false))
    #expect(DiskArgument(argument: "disk.img,ro,ro") == DiskArgument(path: "disk.img,ro", readOnly: true))
    #expect(DiskArgument(argument: "") == nil)
    #expect(DiskArgument(argument: ",readonly") == nil)
  }

  @Test func serialBackendsParse() {
    #expect(SerialBackend(argument: "stdio") == .stdio)
    #expect(SerialBackend(argument: "null") == .null)
    #expect(SerialBackend(argument: "stderr") == .stderr)
    #expect(SerialBackend(argument: "file:/tmp/x") == .file("/tmp/x"))
    #expect(SerialBackend(argument: "file:") == nil)
    #expect(SerialBackend(argument: "tcp:1234") == nil)
  }
}
