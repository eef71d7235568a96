/// The user-text pages: the only part of the kernel image ring 3 may execute (read-only).
enum UserText {
  static func expose() {
    var page = KernelLayout.userTextStart
    while page < KernelLayout.userTextEnd {
      Platform.setPageTableEntry(KernelLayout.firstPageTable + Int(page >> 12), page | 0x5)  // present, user
      Platform.invalidatePage(page)
      page += UserWindow.pageSize
    }
  }
}
