// What the gateway's own pages (/console, /account) share: the GraphQL call with the session
// cookie, and a small DOM builder. Loaded before each page's script.
"use strict";
const Pages = (() => {
  // onUnauthenticated: called when the session has ended (401) before the error is thrown.
  async function gql(query, variables = {}, onUnauthenticated = null) {
    const response = await fetch("/graphql", {
      method: "POST",
      credentials: "same-origin",
      headers: {"content-type": "application/json", "accept": "application/json"},
      body: JSON.stringify({query, variables}),
    });
    if (response.status === 401 && onUnauthenticated) {
      onUnauthenticated();
      throw new Error("Your session has ended: sign in again.");
    }
    let body;
    try {
      body = await response.json();
    } catch (error) {
      throw new Error(`The gateway answered ${response.status} without a readable body.`);
    }
    if (body.errors && body.errors.length) {
      throw new Error(body.errors.map((e) => e.message).join(" "));
    }
    return body.data;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "on") {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  return {gql, el};
})();
