// sopbot dashboard: client-side sorting of tables marked .sortable (server sorting works too).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    const heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.from(heads).forEach((th, col) => {
      th.addEventListener("click", (ev) => {
        ev.preventDefault();
        const body = table.tBodies[0];
        const desc = th.dataset.dir !== "desc";
        th.dataset.dir = desc ? "desc" : "asc";
        const key = (row) => {
          const cell = row.cells[col];
          if (!cell) return "";
          const v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
          const n = parseFloat(v);
          return v === "" ? null : (isNaN(n) ? v : n);
        };
        const rows = Array.from(body.rows);
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          if (x === null) return 1;
          if (y === null) return -1;
          const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return desc ? -c : c;
        });
        rows.forEach((r) => body.appendChild(r));
      });
    });
  }
});
