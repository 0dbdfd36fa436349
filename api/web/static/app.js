/* The pages' one script: the JSON API with the session's CSRF token, forms that call it, sortable tables,
   and charts drawn with the bundled Plotly. Every action goes through the JSON API: nothing is done twice. */
"use strict";

const Carbon = (() => {
  const CSRF_COOKIE = "carbon_csrf";

  function cookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  /* Call the JSON API as the signed-in browser session. body: a FormData (multipart or sign-in form),
     URLSearchParams, or any other value (sent as JSON). Resolves to {ok, status, body} (body: parsed JSON or null). */
  async function api(method, url, body, headers = {}) {
    const init = {method, credentials: "same-origin", headers: {"Accept": "application/json", ...headers}};
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = cookie(CSRF_COOKIE);
    if (body instanceof FormData || body instanceof URLSearchParams) init.body = body;
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const response = await fetch(url, init);
    let parsed = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) parsed = await response.json();
    return {ok: response.ok, status: response.status, body: parsed};
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  /* Show a problem+json answer in box: its code and detail, and every error as a table row (row, column, value,
     expected for a refused file; loc and msg for an invalid request). */
  function showProblem(box, status, problem) {
    box.replaceChildren();
    box.hidden = false;
    box.dataset.code = (problem && problem.code) || "";
    const head = document.createElement("p");
    const meanings = JSON.parse(document.body.dataset.problems || "{}");
    const code = (problem && problem.code) || "";
    const strong = document.createElement("strong");
    strong.textContent = meanings[code] || `${status} ${code}`;
    head.appendChild(strong);
    head.append(` (${status} ${code}) ` + ((problem && problem.detail) || ""));
    box.appendChild(head);
    const errors = (problem && Array.isArray(problem.errors)) ? problem.errors : [];
    if (!errors.length) return;
    const fileErrors = errors.some((e) => "row" in e || "column" in e);
    const columns = fileErrors ? ["row", "column", "value", "expected", "code"] : ["loc", "msg", "type"];
    const table = document.createElement("table");
    table.className = "data";
    table.dataset.testid = "error-table";
    const header = table.createTHead().insertRow();
    const labels = JSON.parse(document.body.dataset.errorColumns || "{}");
    columns.forEach((name) => {
      const th = document.createElement("th");
      th.textContent = labels[name] || name;
      header.appendChild(th);
    });
    const tbody = table.createTBody();
    errors.forEach((error) => {
      const row = tbody.insertRow();
      row.dataset.testid = "error-row";
      if (error.row !== undefined && error.row !== null) row.dataset.row = error.row;
      if (error.column) row.dataset.column = error.column;
      columns.forEach((name) => {
        const td = cell(row, Array.isArray(error[name]) ? error[name].join(".") : error[name]);
        if (name === "code" && meanings[error.code]) { td.textContent = meanings[error.code]; td.title = error.code; }
      });
    });
    box.appendChild(table);
  }

  /* A form with data-api="URL" (and data-method, default POST) calls the API on submit. Fields go as JSON (empty
     ones left out; data-int fields as integers), or as multipart with data-multipart. On success: data-success
     "reload" (default) reloads the page, "stay" shows the answer, a URL opens it. Errors: shown in the form's
     .error-box. The event "carbon:done" (detail: {status, body}) fires on success. */
  function bindApiForm(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const box = form.querySelector(".error-box");
      const buttons = form.querySelectorAll("button");
      if (box) box.hidden = true;
      buttons.forEach((b) => { b.disabled = true; });
      try {
        let body;
        const data = new FormData(form);
        if (form.hasAttribute("data-multipart")) body = data;
        else {
          body = {};
          for (const [name, value] of data.entries()) {
            if (value === "") continue;
            const input = form.elements[name];
            body[name] = input && input.dataset && input.dataset.int !== undefined ? Number(value) : value;
          }
          if (event.submitter && event.submitter.name) body[event.submitter.name] = event.submitter.value;
        }
        const answer = await api(form.dataset.method || "POST", form.dataset.api, body);
        if (!answer.ok) { if (box) showProblem(box, answer.status, answer.body); return; }
        form.dispatchEvent(new CustomEvent("carbon:done", {detail: answer, bubbles: true}));
        const success = form.dataset.success || "reload";
        if (success === "reload") window.location.reload();
        else if (success !== "stay") window.location.assign(success);
      } catch (error) {
        if (box) showProblem(box, 0, {code: "network_error", detail: String(error)});
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function bindSignIn(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const box = document.getElementById("sign-in-error");
      box.hidden = true;
      const answer = await api("POST", "/v1/auth/session", new URLSearchParams(new FormData(form)));
      if (answer.ok) window.location.assign(form.dataset.next || "/ui/");
      else showProblem(box, answer.status, answer.body);
    });
  }

  function bindSignOut(button) {
    button.addEventListener("click", async () => {
      await api("POST", "/v1/auth/logout");
      window.location.assign("/ui/login");
    });
  }

  /* Click a header with data-sort ("text" or "number") to sort the table body by that column; numbers sort by the
     cell's data-value when it has one (the unformatted number). */
  function bindSortable(table) {
    table.querySelectorAll("th[data-sort]").forEach((th) => {
      th.addEventListener("click", () => {
        const index = Array.from(th.parentNode.children).indexOf(th);
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th[aria-sort]").forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = th.dataset.sort === "number";
        const key = (row) => {
          const td = row.children[index];
          if (!td) return numeric ? -Infinity : "";
          if (!numeric) return td.textContent.trim();
          const value = parseFloat(td.dataset.value ?? td.textContent.replace(/,/g, ""));
          return Number.isNaN(value) ? -Infinity : value;
        };
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).sort((a, b) => {
          const x = key(a); const y = key(b);
          const order = numeric ? x - y : String(x).localeCompare(String(y), document.documentElement.lang);
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  }

  function drawCharts() {
    if (!window.Plotly) return;
    document.querySelectorAll(".chart[data-figure]").forEach((element) => {
      const figure = JSON.parse(element.dataset.figure);
      const layout = {margin: {t: 30, r: 10, b: 40, l: 60}, autosize: true, legend: {orientation: "h"},
                      ...figure.layout};
      window.Plotly.newPlot(element, figure.data, layout, {responsive: true, displaylogo: false});
    });
  }

  function start() {
    document.querySelectorAll("form[data-api]").forEach(bindApiForm);
    const signIn = document.getElementById("sign-in-form");
    if (signIn) bindSignIn(signIn);
    const signOut = document.getElementById("sign-out");
    if (signOut) bindSignOut(signOut);
    document.querySelectorAll("table.data").forEach(bindSortable);
    drawCharts();
    document.documentElement.setAttribute("data-ready", "");  // the forms are bound: see the guard in base.html
  }

  document.addEventListener("DOMContentLoaded", start);
  return {api, cookie, showProblem, bindApiForm};
})();
window.Carbon = Carbon;
