// DOM building for the console: every value goes in as text (textContent or a text node), never as markup.

/**
 * An element `tag` with `props` (className, attributes in `attrs`, dataset in `data`, event handlers `on*`) and
 * children (strings become text nodes; null and undefined are skipped).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'data') for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else if (key === 'attrs') for (const [k, v] of Object.entries(value)) node.setAttribute(k, String(v));
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2).toLowerCase(), value);
    else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `node` with `children`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

export const byId = (id) => document.getElementById(id);

/** A JSON value shown as indented text in a <pre>. */
export function jsonBlock(value) {
  return h('pre', { className: 'json', text: JSON.stringify(value, null, 2) });
}
