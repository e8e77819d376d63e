// The status page is rendered by the gateway; this fetches it again every 2 s and swaps the
// new body in, so the page stays live without a reload (and reads the same without script).
"use strict";
async function refresh() {
  try {
    const response = await fetch("/", { cache: "no-store" });
    if (response.ok) {
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      document.getElementById("page").replaceWith(next.getElementById("page"));
    }
  } finally {
    setTimeout(refresh, 2000);
  }
}
setTimeout(refresh, 2000);
